"""lmtrain: config-driven pretraining and fine-tuning of Transformer language models."""

__version__ = "0.1.0"
