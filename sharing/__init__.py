"""Share requests, grants and the sharing gateway (共享). Built in a later issue."""
