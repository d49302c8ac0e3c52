"""Reports: the JSON model (source of truth), its Markdown view, and atomic storage."""

from .markdown import to_markdown as to_markdown
from .model import SCHEMA_VERSION as SCHEMA_VERSION
from .model import Finding as Finding
from .model import Report as Report
from .model import Result as Result
from .storage import load_report as load_report
from .storage import write_report as write_report
