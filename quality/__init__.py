"""Quality checks derived from the standards and problem-data tickets (质量, 问题数据工单). Built in a later issue."""
