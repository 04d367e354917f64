"""The command line: ``lmtrain <command> overrides...``, its arguments, help, hints and shell completion."""
