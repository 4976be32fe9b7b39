//! A minimal .xlsx writer for the demo ledgers ([`crate::synth`]): one worksheet of
//! text, numbers and dates (dates as Excel serial numbers with the built-in
//! date format 14, as Excel itself stores them). Written with the `zip` crate
//! calamine already uses, instead of a full xlsx-writing dependency; the
//! output is deterministic (fixed timestamps inside the archive).

use std::io::Write;
use std::path::Path;

use sifa_agent::dates::Day;

pub enum XCell {
    Text(String),
    Number(f64),
    Date(Day),
    Empty,
}

const NS: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
const REL_NS: &str = "http://schemas.openxmlformats.org/package/2006/relationships";
const DOC_REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

fn column_name(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).expect("ascii")
}

fn sheet_xml(rows: &[Vec<XCell>]) -> String {
    let mut x =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<worksheet xmlns=\"{NS}\"><sheetData>");
    for (r, row) in rows.iter().enumerate() {
        x += &format!("<row r=\"{}\">", r + 1);
        for (c, cell) in row.iter().enumerate() {
            let at = format!("{}{}", column_name(c), r + 1);
            match cell {
                XCell::Empty => {}
                XCell::Text(t) => x += &format!("<c r=\"{at}\" t=\"inlineStr\"><is><t>{}</t></is></c>", escape(t)),
                XCell::Number(n) => x += &format!("<c r=\"{at}\"><v>{n}</v></c>"),
                XCell::Date(d) => x += &format!("<c r=\"{at}\" s=\"1\"><v>{}</v></c>", d.excel_serial()),
            }
        }
        x += "</row>";
    }
    x += "</sheetData></worksheet>";
    x
}

/// Writes a workbook with one worksheet named `sheet`.
pub fn write(path: &Path, sheet: &str, rows: &[Vec<XCell>]) -> std::io::Result<()> {
    let head = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";
    let parts: Vec<(&str, String)> = vec![
        (
            "[Content_Types].xml",
            format!(
                "{head}<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
<Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
<Default Extension=\"xml\" ContentType=\"application/xml\"/>\
<Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
<Override PartName=\"/xl/worksheets/sheet1.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>\
<Override PartName=\"/xl/styles.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml\"/>\
</Types>"
            ),
        ),
        (
            "_rels/.rels",
            format!(
                "{head}<Relationships xmlns=\"{REL_NS}\"><Relationship Id=\"rId1\" Type=\"{DOC_REL}/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>"
            ),
        ),
        (
            "xl/workbook.xml",
            format!(
                "{head}<workbook xmlns=\"{NS}\" xmlns:r=\"{DOC_REL}\"><sheets><sheet name=\"{}\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>",
                escape(sheet)
            ),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            format!(
                "{head}<Relationships xmlns=\"{REL_NS}\">\
<Relationship Id=\"rId1\" Type=\"{DOC_REL}/worksheet\" Target=\"worksheets/sheet1.xml\"/>\
<Relationship Id=\"rId2\" Type=\"{DOC_REL}/styles\" Target=\"styles.xml\"/></Relationships>"
            ),
        ),
        (
            "xl/styles.xml",
            format!(
                "{head}<styleSheet xmlns=\"{NS}\"><fonts count=\"1\"><font><sz val=\"11\"/><name val=\"等线\"/></font></fonts>\
<fills count=\"2\"><fill><patternFill patternType=\"none\"/></fill><fill><patternFill patternType=\"gray125\"/></fill></fills>\
<borders count=\"1\"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
<cellStyleXfs count=\"1\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\"/></cellStyleXfs>\
<cellXfs count=\"2\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\"/>\
<xf numFmtId=\"14\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyNumberFormat=\"1\"/></cellXfs></styleSheet>"
            ),
        ),
        ("xl/worksheets/sheet1.xml", sheet_xml(rows)),
    ];
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default());
        for (name, body) in &parts {
            zip.start_file(*name, opts).map_err(std::io::Error::other)?;
            zip.write_all(body.as_bytes())?;
        }
        zip.finish().map_err(std::io::Error::other)?;
    }
    std::fs::write(path, buf.into_inner())
}

#[cfg(test)]
mod tests {
    #[test]
    fn column_names() {
        let n: Vec<_> = [0, 1, 25, 26, 27, 51, 52, 701, 702].iter().map(|&i| super::column_name(i)).collect();
        assert_eq!(n, ["A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]);
    }
}
