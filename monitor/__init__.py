"""``python -m monitor``: a read-only terminal view of the exchange (Textual).

``state`` is the pure reducer, ``view`` renders it as text, ``feed`` is the relay reader,
``app`` puts them on screen.
"""
