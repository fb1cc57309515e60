"""What runs leave behind: claims on output folders, the local and cloud sweeps."""
