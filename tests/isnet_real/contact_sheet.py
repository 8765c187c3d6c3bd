"""A contact sheet of nobg's cut-outs: per photo, the photo, the mask (the cut-out's alpha) and
the cut-out over a checkerboard, side by side, every tile 256 pixels high, one row per photo.

usage: contact_sheet.py PHOTO_DIR CUTOUT_DIR OUT.png
(each PHOTO_DIR/NAME.* has its cut-out at CUTOUT_DIR/NAME.png, as `nobg batch` writes them)
"""

import os
import sys

from PIL import Image, ImageDraw

HEIGHT = 256
GAP = 8
SQUARE = 16


def checkerboard(size):
    board = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(board)
    for y in range(0, size[1], SQUARE):
        for x in range(0, size[0], SQUARE):
            if (x // SQUARE + y // SQUARE) % 2:
                draw.rectangle([x, y, x + SQUARE - 1, y + SQUARE - 1], fill=(204, 204, 204))
    return board


def tiles(photo_path, cutout_path):
    photo = Image.open(photo_path).convert("RGB")
    cutout = Image.open(cutout_path).convert("RGBA")
    width = round(photo.width * HEIGHT / photo.height)
    size = (width, HEIGHT)
    photo = photo.resize(size, Image.LANCZOS)
    cutout = cutout.resize(size, Image.LANCZOS)
    mask = cutout.getchannel("A").convert("RGB")
    on_board = checkerboard(size)
    on_board.paste(cutout, (0, 0), cutout)
    return [photo, mask, on_board]


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    photo_dir, cutout_dir, out = sys.argv[1:]
    rows = []
    for name in sorted(os.listdir(photo_dir)):
        stem, ext = os.path.splitext(name)
        cutout = os.path.join(cutout_dir, stem + ".png")
        if ext.lower() in (".png", ".jpg", ".jpeg", ".webp") and os.path.exists(cutout):
            rows.append(tiles(os.path.join(photo_dir, name), cutout))
    if not rows:
        sys.exit(f"no cut-outs in {cutout_dir}")
    column = [max(row[i].width for row in rows) for i in range(3)]
    sheet = Image.new("RGB", (sum(column) + GAP * 4, len(rows) * (HEIGHT + GAP) + GAP),
                      (40, 40, 40))
    y = GAP
    for row in rows:
        x = GAP
        for tile, width in zip(row, column):
            sheet.paste(tile, (x, y))
            x += width + GAP
        y += HEIGHT + GAP
    sheet.save(out)
    print(f"contact sheet: {len(rows)} photos -> {out}")


if __name__ == "__main__":
    main()
