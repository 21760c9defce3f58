"""The seed's applications: character-level text generation (charlm), IMDB sentiment
classification (sentiment) and fine-tuning a pre-trained character model (finetune), each
runnable on fastrnn or on torch.nn with the same model, input and seed (--impl)."""
