"""The recommendation API's routers, one per resource, and the dependencies they share (`deps`)."""
