/**
 * Text helpers of the HTML reports: escaping and number formatting. The charts themselves are Vega-Lite specs
 * rendered to SVG by ./charts.ts (the hand-drawn SVG builders that lived here are gone).
 */
export function esc(s: string | number): string {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function fmt(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits);
}
