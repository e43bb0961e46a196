"""The `embeddings` backend: sentence-embedding models as ONNX graphs with their Hugging Face tokenizer."""
