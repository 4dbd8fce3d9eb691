//! Text tables, as the layout module prints them.

/// Formats tab-separated rows into aligned lines, each ending with a newline.
pub fn format_table(rows: &[String]) -> String {
    garage_rpc::layout::format_table(rows.to_vec())
        .into_iter()
        .map(|l| l + "\n")
        .collect()
}
