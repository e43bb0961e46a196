"""The `diffusion` backend: text-to-image with Hugging Face diffusers (an optional extra)."""
