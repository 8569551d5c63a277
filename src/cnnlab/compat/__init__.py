"""Adapters: the only places cnnlab touches a library's private API, each with its reason."""
