"""Fine-tuning: training data as chat conversations, local LoRA, and provider fine-tuning jobs.

Heavy libraries (torch, transformers, peft, openai) are imported inside the functions that use them.
"""
