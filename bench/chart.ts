/** The small SVG bar chart for the README: req/s of the 50-connection GET rows. */
import type { Row } from './measure.ts';

const num = (v: number | undefined) => Math.round(v ?? 0).toLocaleString('en');
const COLOURS: Record<string, string> = {
  direct: '#9aa5b1',
  reference: '#5b8def',
  floor: '#a3bffa',
  reprise: '#e8833a',
  'reprise-unbounded': '#f2b98c',
  squid: '#6bbf59',
};
const esc = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;');

/** Horizontal bars of req/s for the 50-connection GET rows, grouped by body size. */
export function chartSvg(rows: readonly Row[], machine: string): string {
  const bars = rows.filter((r) => r.group === 1 && r.connections === 50 && r.reqPerS !== undefined);
  const max = Math.max(1, ...bars.map((r) => r.reqPerS ?? 0));
  const [left, width, barH, gap] = [170, 400, 18, 4];
  const parts: string[] = [];
  let y = 40;
  let scenario = '';
  for (const r of bars) {
    if (r.scenario !== scenario) {
      scenario = r.scenario;
      y += 10;
      parts.push(
        `<text x="10" y="${y + 12}" font-weight="bold">${esc(scenario)}, 50 connections</text>`,
      );
      y += 20;
    }
    const w = Math.max(1, ((r.reqPerS ?? 0) / max) * width);
    parts.push(
      `<text x="${left - 8}" y="${y + 13}" text-anchor="end">${r.via}</text>`,
      `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${COLOURS[r.via] ?? '#888'}"/>`,
      `<text x="${(left + w + 6).toFixed(1)}" y="${y + 13}">${num(r.reqPerS)} req/s</text>`,
    );
    y += barH + gap;
  }
  const height = y + 30;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="680" height="${height}" viewBox="0 0 680 ${height}" font-family="sans-serif" font-size="12">`,
    '<title>reprise throughput against direct and the bare reference proxy</title>',
    '<rect width="100%" height="100%" fill="white"/>',
    '<text x="10" y="22" font-size="15" font-weight="bold">reprise: throughput through the proxy (higher is better)</text>',
    ...parts,
    `<text x="10" y="${height - 10}" fill="#555" font-size="10">${esc(machine)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
