"""The front door: `GET /`, the landing page for people (JSON for programs), and `/docs`, the API docs."""

from .apidocs import ApiDocs
from .landing import FrontDoor

__all__ = ["ApiDocs", "FrontDoor"]
