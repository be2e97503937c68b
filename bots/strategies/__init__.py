"""Built-in strategies (``--strategy maker|taker|random|market_maker|gambler|news_trader``).

They use only ``bots.api``, like any user strategy, and double as examples.
"""
