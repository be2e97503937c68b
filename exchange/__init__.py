"""The exchange engine: the pure matching core (``exchange.core``), the wire protocol
(``exchange.protocol``) and the engine process around them."""
