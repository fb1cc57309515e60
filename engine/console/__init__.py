"""What a person sees: events, and the live view, plain lines and questions made of them."""
