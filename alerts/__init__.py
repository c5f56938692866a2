"""chipwatch: real-time alerts for AI-chip trade news.

Pipeline stages, one module each: config → fetch → parse → dedupe → match → store → deliver,
tied together by ``pipeline`` (one poll cycle) and ``scheduler`` (ticks only).
"""

__version__ = "0.1.0"
USER_AGENT = f"chipwatch/{__version__} (+https://github.com/chipwatch/chipwatch; RSS alert bot)"
