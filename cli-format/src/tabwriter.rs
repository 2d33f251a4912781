//! Go's `text/tabwriter` as docker's tables use it (minwidth 10, padding 3,
//! spaces): cells end at a tab, the text after a line's last tab is not
//! part of a column, and a column's width is set per block of consecutive
//! lines that have a cell in it, as Go computes it, so `table` output
//! lines up byte for byte with docker's.

const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

/// Aligns the tab-separated cells of `text`.
pub fn align(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format(&lines, 0, lines.len(), &mut widths, &mut out);
    out
}

/// Go's `Writer.format`: lays out lines `[start, end)` for the column
/// `widths.len()`, recursing into each block of lines that has that column.
fn format(
    lines: &[Vec<&str>],
    start: usize,
    end: usize,
    widths: &mut Vec<usize>,
    out: &mut String,
) {
    let column = widths.len();
    let mut line0 = start;
    let mut this = start;
    while this < end {
        if column >= lines[this].len() - 1 {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = MIN_WIDTH;
        while this < end && column < lines[this].len() - 1 {
            width = width.max(lines[this][column].chars().count() + PADDING);
            this += 1;
        }
        widths.push(width);
        format(lines, line0, this, widths, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, end, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for (i, line) in lines.iter().enumerate().take(to).skip(from) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j).filter(|_| j < line.len() - 1) {
                let pad = w.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        // Every line but the text's last was ended by a newline.
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::align;

    #[test]
    fn columns_as_go_tabwriter() {
        let t = "REPOSITORY\tTAG\tIMAGE ID\nbusybox\tlatest\tabc\n";
        assert_eq!(
            align(t),
            "REPOSITORY   TAG       IMAGE ID\nbusybox      latest    abc\n"
        );
    }

    #[test]
    fn trailing_text_is_not_a_column() {
        assert_eq!(align("a\tb\nlonger line\n"), "a         b\nlonger line\n");
    }
}
