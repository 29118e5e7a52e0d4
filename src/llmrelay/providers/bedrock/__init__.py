"""The Amazon Bedrock Converse API wire format, provider kind ``bedrock``."""
