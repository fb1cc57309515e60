"""What a build leaves: the export chain, archives, digests."""
