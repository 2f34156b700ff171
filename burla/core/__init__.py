"""The pure core of burla: models, scheduling, kill plans, state machines, protocols.

It imports only the standard library and pydantic, and reads time only through a Clock.
"""
