"""Built-in strategies (``--strategy maker|taker|random|market_maker|gambler``).

They use only ``bots.api``, like any user strategy, and double as examples.
"""
