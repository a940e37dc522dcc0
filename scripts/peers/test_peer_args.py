"""Checks of the argument types the peer scripts share (peer_args.py): what each accepts and what it refuses."""

import argparse
import unittest

from peer_args import (non_negative_float, non_negative_int, non_negative_ints, positive_float, positive_ints,
                       width_list)


class Types(unittest.TestCase):
    def test_accepted(self):
        self.assertEqual(non_negative_float("0"), 0.0)
        self.assertEqual(positive_float("0.5"), 0.5)
        self.assertEqual(positive_ints("1,2"), [1, 2])
        self.assertEqual(non_negative_int("0"), 0)
        self.assertEqual(non_negative_ints("0,7"), [0, 7])
        self.assertEqual(width_list("64,128"), [64, 128])

    def test_refused_with_what_is_accepted(self):
        for parse, text, expected in [
            (non_negative_float, "-0.5", "expected a finite number >= 0"),
            (non_negative_float, "inf", "expected a finite number >= 0"),
            (non_negative_float, "nan", "expected a finite number >= 0"),
            (non_negative_float, "x", "expected a finite number >= 0"),
            (positive_float, "0", "expected a finite number > 0"),
            (positive_float, "-1", "expected a finite number > 0"),
            (positive_ints, "two", "expected comma-separated positive integers"),
            (positive_ints, "1,0", "expected comma-separated positive integers"),
            (non_negative_int, "-1", "expected an integer >= 0"),
            (non_negative_int, "1,2", "expected an integer >= 0"),
            (non_negative_ints, "0,-1", "expected comma-separated integers >= 0"),
            (non_negative_ints, "a", "expected comma-separated integers >= 0"),
            (width_list, "128,64", "expected at least two increasing positive widths"),
            (width_list, "64", "expected at least two increasing positive widths"),
        ]:
            with self.assertRaises(argparse.ArgumentTypeError) as caught:
                parse(text)
            self.assertIn(expected, str(caught.exception), text)


if __name__ == "__main__":
    unittest.main()
