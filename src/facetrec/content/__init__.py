"""Stage 2, encode: item text, review sentiment, lexical and language-model encoders, embedding cache."""
