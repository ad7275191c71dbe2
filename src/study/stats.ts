// Small statistics helpers shared by the studies (mean, sample standard deviation, rounding).

export function mean(v: readonly number[]): number {
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : Number.NaN;
}

/** Sample standard deviation (n - 1); 0 for fewer than two values. */
export function std(v: readonly number[]): number {
  if (v.length < 2) return 0;
  const m = mean(v);
  return Math.sqrt(v.reduce((s, x) => s + (x - m) ** 2, 0) / (v.length - 1));
}

/** Rounds to 4 decimals (fractions keep 0.01 percentage-point resolution in the JSON). */
export function r4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** Element-wise mean of curves, cut to the shortest. */
export function meanCurve(curves: readonly (readonly number[])[]): number[] {
  if (!curves.length) return [];
  const len = Math.min(...curves.map((c) => c.length));
  return Array.from({ length: len }, (_, i) => mean(curves.map((c) => c[i]!)));
}

/** "12.3 ± 1.4" in percent (the ± part only when sd is given). */
export function pct(x: number, sd?: number): string {
  return `${(x * 100).toFixed(1)}${sd !== undefined ? ` ± ${(sd * 100).toFixed(1)}` : ''}`;
}
