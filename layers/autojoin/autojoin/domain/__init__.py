"""Pure domain: quorum maths, zone tolerance, placement, transition plans, verdicts.

Nothing here does I/O, reads the environment or the clock, or imports boto3.
"""
