"""Word embeddings: Word2Vec (gensim owns its loop), GloVe (co-occurrence counts + AdaGrad in
torch), their evaluation on word analogies and similarity, and the vector file formats."""
