//! A minimal .xlsx writer for the demo ledgers ([`crate::synth`]) and the test books:
//! worksheets of text, numbers and dates (dates as Excel serial numbers with
//! the built-in date format 14, as Excel itself stores them), optionally
//! hidden, with merged ranges, and formulas without a saved result (as a
//! program that does not compute them writes them). Written with the `zip` crate
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
    /// A formula with no saved result, e.g. `VLOOKUP(B2,类别表!A:B,2,0)`.
    Formula(String),
}

/// One worksheet to write.
pub struct XSheet<'a> {
    pub name: &'a str,
    pub rows: &'a [Vec<XCell>],
    pub hidden: bool,
    /// Merged ranges, e.g. "C2:C4".
    pub merged: &'a [&'a str],
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

use sifa_agent::workbook::column_letters as column_name;

fn sheet_xml(rows: &[Vec<XCell>], merged: &[&str]) -> String {
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
                XCell::Formula(f) => x += &format!("<c r=\"{at}\"><f>{}</f></c>", escape(f)),
            }
        }
        x += "</row>";
    }
    x += "</sheetData>";
    if !merged.is_empty() {
        x += &format!("<mergeCells count=\"{}\">", merged.len());
        for m in merged {
            x += &format!("<mergeCell ref=\"{m}\"/>");
        }
        x += "</mergeCells>";
    }
    x += "</worksheet>";
    x
}

/// Writes a workbook with one worksheet named `sheet`.
pub fn write(path: &Path, sheet: &str, rows: &[Vec<XCell>]) -> std::io::Result<()> {
    write_sheets(path, &[XSheet { name: sheet, rows, hidden: false, merged: &[] }])
}

/// Writes a workbook with these worksheets, in this order.
pub fn write_sheets(path: &Path, sheets: &[XSheet]) -> std::io::Result<()> {
    let head = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";
    let n = sheets.len();
    let overrides: String = (1..=n)
        .map(|i| format!("<Override PartName=\"/xl/worksheets/sheet{i}.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>"))
        .collect();
    let sheet_list: String = sheets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let state = if s.hidden { " state=\"hidden\"" } else { "" };
            format!("<sheet name=\"{}\" sheetId=\"{}\"{state} r:id=\"rId{}\"/>", escape(s.name), i + 1, i + 1)
        })
        .collect();
    let sheet_rels: String = (1..=n)
        .map(|i| {
            format!("<Relationship Id=\"rId{i}\" Type=\"{DOC_REL}/worksheet\" Target=\"worksheets/sheet{i}.xml\"/>")
        })
        .collect();
    let mut parts: Vec<(String, String)> = vec![
        (
            "[Content_Types].xml".to_string(),
            format!(
                "{head}<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
<Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
<Default Extension=\"xml\" ContentType=\"application/xml\"/>\
<Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
{overrides}<Override PartName=\"/xl/styles.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml\"/>\
</Types>"
            ),
        ),
        (
            "_rels/.rels".to_string(),
            format!(
                "{head}<Relationships xmlns=\"{REL_NS}\"><Relationship Id=\"rId1\" Type=\"{DOC_REL}/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>"
            ),
        ),
        (
            "xl/workbook.xml".to_string(),
            format!("{head}<workbook xmlns=\"{NS}\" xmlns:r=\"{DOC_REL}\"><sheets>{sheet_list}</sheets></workbook>"),
        ),
        (
            "xl/_rels/workbook.xml.rels".to_string(),
            format!(
                "{head}<Relationships xmlns=\"{REL_NS}\">\
{sheet_rels}<Relationship Id=\"rIdStyles\" Type=\"{DOC_REL}/styles\" Target=\"styles.xml\"/></Relationships>"
            ),
        ),
        (
            "xl/styles.xml".to_string(),
            format!(
                "{head}<styleSheet xmlns=\"{NS}\"><fonts count=\"1\"><font><sz val=\"11\"/><name val=\"等线\"/></font></fonts>\
<fills count=\"2\"><fill><patternFill patternType=\"none\"/></fill><fill><patternFill patternType=\"gray125\"/></fill></fills>\
<borders count=\"1\"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
<cellStyleXfs count=\"1\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\"/></cellStyleXfs>\
<cellXfs count=\"2\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\"/>\
<xf numFmtId=\"14\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyNumberFormat=\"1\"/></cellXfs></styleSheet>"
            ),
        ),
    ];
    for (i, s) in sheets.iter().enumerate() {
        parts.push((format!("xl/worksheets/sheet{}.xml", i + 1), sheet_xml(s.rows, s.merged)));
    }
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default());
        for (name, body) in &parts {
            zip.start_file(name.as_str(), opts).map_err(std::io::Error::other)?;
            zip.write_all(body.as_bytes())?;
        }
        zip.finish().map_err(std::io::Error::other)?;
    }
    std::fs::write(path, buf.into_inner())
}
