//! K2V endpoints with our own signed requests.
