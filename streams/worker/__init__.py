"""The Faust wiring: the app and its tables, the agents, the input consumer, the web pages."""
