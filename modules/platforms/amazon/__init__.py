"""The amazon platform: EC2 builds (issue 5, in progress); for now the sweeper of tagged AWS resources."""
from modules.platforms.amazon import sweep  # noqa: F401  (registers the "aws" sweeper)
