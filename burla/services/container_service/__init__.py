"""container_service: the worker inside every container; runs the user's function.

It imports only the standard library, cloudpickle and tblib, so it starts fast inside
any image and sees no packages but the ones the job brings.
"""
