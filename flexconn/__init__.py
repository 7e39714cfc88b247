"""flexconn: a Trio-native connector for the CoinFLEX v2 API."""
