"""`burla deploy` and `burla destroy`: a whole cluster on Google Cloud in one command."""
