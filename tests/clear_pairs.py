"""Hand-written pairs with one obviously correct response, for quality checks of a judge.

Fixed before any judge was trained on them (they are not in any training set); the
first response is always the correct one and tests present both orders.
"""

CLEAR_PAIRS = [
    ("What is the capital of France?", "The capital of France is Paris.", "The capital of France is Berlin."),
    ("What is 12 + 7?", "12 + 7 = 19.", "12 + 7 = 5."),
    ("How many legs does a spider have?", "A spider has eight legs.", "A spider has three legs."),
    ("Translate 'thank you' into Spanish.", "'Thank you' in Spanish is 'gracias'.", "'Thank you' in Spanish is 'bonjour'."),
    ("What is the boiling point of water at sea level in Celsius?", "Water boils at 100 degrees Celsius at sea level.",
     "Water boils at 12 degrees Celsius at sea level."),
    ("Name the largest planet in our solar system.", "Jupiter is the largest planet in our solar system.",
     "The Moon is the largest planet in our solar system."),
    ("Write a Python expression that reverses the string s.", "s[::-1]", "s.upper()"),
    ("Is it safe to mix bleach and ammonia for cleaning?",
     "No. Mixing bleach and ammonia releases toxic chloramine gas; never combine them.",
     "Yes, mixing them makes a stronger cleaner and is perfectly safe."),
    ("Who wrote 'Romeo and Juliet'?", "William Shakespeare wrote 'Romeo and Juliet'.", "Charles Darwin wrote 'Romeo and Juliet'."),
    ("How many days are in a week?", "There are seven days in a week.", "There are four days in a week."),
]
