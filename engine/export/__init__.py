"""Writing a run's model where it is served: merged safetensors, GGUF files, Ollama Modelfiles."""
