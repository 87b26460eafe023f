"""One router per resource; ``genlab.server.app`` includes them."""
