/** The heatmap canvas's pixel size (the CSS scales it). Cells are aggregated to fit width x height. */
export const CANVAS_WIDTH = 1024;
export const CANVAS_HEIGHT = 256;
