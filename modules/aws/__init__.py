"""AWS helpers the amazon platform and the ami export share: clients, EC2 calls, EBS direct and S3 uploads."""
