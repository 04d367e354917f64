"""The run folder: its layout, its claim and lock, its status, its record of the files lmtrain made,
where it is placed, and the job log Hydra writes into it."""
