"""LoRA fine-tuning of the CPU cascade's small LLM (llama.cpp backend), exported as a GGUF LoRA adapter."""
