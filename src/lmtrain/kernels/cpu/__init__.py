"""lmtrain's CPU kernels: oneDNN linear products, a cheaper dropout mask, prepacked decoding weights."""
