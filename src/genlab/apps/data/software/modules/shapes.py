"""Geometry of simple shapes."""

import math


class Rectangle:
    def __init__(self, width, height):
        if width < 0 or height < 0:
            raise ValueError("sides must not be negative")
        self.width = width
        self.height = height

    def area(self):
        return self.width * self.height

    def perimeter(self):
        return 2 * (self.width + self.height)

    def is_square(self):
        return self.width == self.height


def circle_area(radius):
    if radius < 0:
        raise ValueError("radius must not be negative")
    return math.pi * radius**2


def distance(p, q):
    return math.hypot(q[0] - p[0], q[1] - p[1])
