//! The operator CLI against a real node: output lines scripts parse, errors.
