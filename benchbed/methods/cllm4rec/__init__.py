"""CLLM4Rec (seed 004): vocabulary-extended soft+hard prompts, mutual regularization, the rec head."""
