//! The percentile plot latency people know (HdrHistogram's): latency against
//! percentile on a "nines" axis — x = log10(1 / (1 − p)), so 90 %, 99 %, 99.9 % and
//! 99.99 % are evenly spaced — latency on a log axis, one line per histogram; and the
//! SVG page that holds a grid of them.

use std::io;
use std::path::Path;

use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One chart's content: its title and a named histogram (µs) per line.
pub struct Chart<'a> {
    pub title: String,
    pub lines: Vec<(String, &'a Histogram<u64>)>,
}

/// Writes `charts` to the SVG `path`, two to a row.
pub fn write_svg(path: &Path, charts: &[Chart]) -> io::Result<()> {
    if charts.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no latency curves to plot",
        ));
    }
    let cols = 2usize.min(charts.len());
    let rows = charts.len().div_ceil(cols);
    let root = SVGBackend::new(path, (640 * cols as u32, 420 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(io::Error::other)?;
    for (chart, area) in charts.iter().zip(root.split_evenly((rows, cols))) {
        draw(&area, chart)?;
    }
    root.present().map_err(io::Error::other)
}

fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &Chart) -> io::Result<()>
where
    DB::ErrorType: 'static,
{
    let palette = [&RED, &BLUE, &GREEN, &MAGENTA, &CYAN, &BLACK, &YELLOW];
    let xmax = 4.0f64; // 99.99 %
    let curves: Vec<(&str, Vec<(f64, f64)>)> = chart
        .lines
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| {
            let pts = (0..=400)
                .map(|i| {
                    let x = i as f64 * xmax / 400.0;
                    let q = 1.0 - 10f64.powf(-x);
                    (x, h.value_at_quantile(q.min(1.0)).max(1) as f64)
                })
                .collect();
            (name.as_str(), pts)
        })
        .collect();
    let ymax = curves
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
        .fold(1.0, f64::max)
        * 1.5;
    let mut c = ChartBuilder::on(area)
        .caption(&chart.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..xmax, (1f64..ymax).log_scale())
        .map_err(io::Error::other)?;
    c.configure_mesh()
        .x_desc("percentile")
        .y_desc("µs")
        .x_labels(5)
        .x_label_formatter(&|x| match x.round() as i64 {
            0 => "0%".into(),
            1 => "90%".into(),
            2 => "99%".into(),
            3 => "99.9%".into(),
            4 => "99.99%".into(),
            _ => String::new(),
        })
        .draw()
        .map_err(io::Error::other)?;
    for (i, (name, pts)) in curves.into_iter().enumerate() {
        let color = palette[i % palette.len()];
        c.draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(io::Error::other)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(io::Error::other)?;
    Ok(())
}
