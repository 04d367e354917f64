"""The files lmtrain writes and reads: safe (no-follow, atomic) writes, tensor files, sharded and
whole checkpoints."""
