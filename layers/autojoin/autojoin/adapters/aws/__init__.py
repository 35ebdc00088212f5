"""boto3-backed adapters. Each takes its client in __init__ and maps ClientError to autojoin.errors."""
