"""The Docker labels that mark a container as burla's: its node, and what it was started as."""

NODE_LABEL = "burla.node"
NAME_LABEL = "burla.name"
PORT_LABEL = "burla.port"
CPUSET_LABEL = "burla.cpuset"
IMAGE_LABEL = "burla.image"
