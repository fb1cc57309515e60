"""What the benches share (a booted guest, the corpus's playbook targets); not benches themselves."""
