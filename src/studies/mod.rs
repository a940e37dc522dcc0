//! Experiments built on the library. Each study is a plain function from a config to a result table; the command
//! line only parses, calls and prints.

pub mod synthetic;
