"""The connection to the machine a build configures: one SSH connection, a persistent shell."""
